"""3D face and body models, their fitting, the stage-1 motion vector and the control renderer.

Every body model speaks the same parameter contract (see `vlogger.body.params`), so the
motion representation and the renderer work with either the default face-mesh model or
SMPL-X.
"""

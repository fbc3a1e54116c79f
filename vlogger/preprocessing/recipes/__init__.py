"""Dataset recipes: a standard talking-head dataset's official annotation files -> clips on disk.

One module per dataset parses its files into a `spec.Recipe` (sources to download once, clips
with span, crop and person); `download` gets sources (yt-dlp or a mirror), `cut` makes clips,
`fetch` runs it all resumably and writes what `vlogger preprocess` needs to split by person.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vlogger.preprocessing.recipes import celebvhq, hdtf, talkinghead1kh
from vlogger.preprocessing.recipes.spec import Recipe

# name -> the parser of its official files (what `--annotations` names)
RECIPES: dict[str, Callable[[Path], Recipe]] = {
    "hdtf": hdtf.parse,  # the folder of HDTF_dataset/*.txt
    "celebvhq": celebvhq.parse,  # celebvhq_info.json
    "talkinghead1kh": talkinghead1kh.parse,  # data_list/SPLIT_video_tubes.txt (SPLIT_video_ids.txt beside it)
}
# benchmark manifests whose people a fetch of the dataset keeps out of training by default
HOLDOUT = {"hdtf": "benchmarks/hdtf-test.yaml"}

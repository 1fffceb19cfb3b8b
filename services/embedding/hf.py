"""transformers entry points that are untyped there, typed as ``Any`` once here instead of an ignore per call.

AutoImageProcessor comes from its own module: transformers 5 without torchvision exports a placeholder that
refuses to load at the top level, while the module's class picks the PIL backend.
"""

from __future__ import annotations

from typing import Any

from transformers import AutoFeatureExtractor as _AutoFeatureExtractor
from transformers import AutoProcessor as _AutoProcessor
from transformers import BlipProcessor as _BlipProcessor
from transformers import ClapFeatureExtractor as _ClapFeatureExtractor
from transformers import ClapProcessor as _ClapProcessor
from transformers import CLIPProcessor as _CLIPProcessor
from transformers import PreTrainedTokenizerFast as _PreTrainedTokenizerFast
from transformers import SiglipProcessor as _SiglipProcessor
from transformers.models.auto.image_processing_auto import AutoImageProcessor as _AutoImageProcessor

AutoProcessor: Any = _AutoProcessor
AutoImageProcessor: Any = _AutoImageProcessor
AutoFeatureExtractor: Any = _AutoFeatureExtractor
BlipProcessor: Any = _BlipProcessor
ClapFeatureExtractor: Any = _ClapFeatureExtractor
ClapProcessor: Any = _ClapProcessor
CLIPProcessor: Any = _CLIPProcessor
SiglipProcessor: Any = _SiglipProcessor
PreTrainedTokenizerFast: Any = _PreTrainedTokenizerFast

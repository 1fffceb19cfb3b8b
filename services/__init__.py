"""xmodal services: the ingest pipeline, embedding, fetching, storage, gateway, monitoring, publishing and the
local stack.

Dependencies point inward: services import schemas, never streams or the CLI (cli/).
"""

import contextlib
import importlib
import warnings

# weaviate-client imports authlib's httpx integration, which warns on import in every process (authlib
# 1.9's own deprecation, nothing xmodal can act on): keep it out of --help and the logs. authlib installs an
# "always" filter for its warnings when its module loads, so it loads first and this filter goes in front.
with contextlib.suppress(ImportError):
    importlib.import_module("authlib.deprecate")
warnings.filterwarnings("ignore", message="The httpx module is deprecated", module="authlib")

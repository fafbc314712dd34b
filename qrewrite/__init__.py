"""qrewrite: fine-tune small causal LMs to rewrite messy questions into the clean question meant."""

import logging

__version__ = "0.1.0"

# On CPUs with avx512_bf16, bitsandbytes tries to fetch an optional 4-bit kernel from the hub and warns on
# every import when it can't; it then uses its plain-torch path, which is what we test. Keep that quiet.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

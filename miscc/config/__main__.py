"""``python -m miscc.config > docs/CONFIG.md``: the key reference as Markdown."""
import sys

from miscc.config import config_doc_markdown

sys.stdout.write(config_doc_markdown())

"""A run on disk and in processes: every file name of a run and of the released formats, atomic
writes (``layout``), strict loading of released files (``checkpoint``), the DAMSM encoder pair built
from them (``encoders``), processes (``distributed``), random streams (``seeding``), progress bars and
log lines (``progress``). Reads no config: callers pass values."""

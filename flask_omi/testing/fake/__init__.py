"""The fake OMI: OMI's sign-in pages, app API, chat and webhook sender, in memory, each behaviour
from OMI's code (file and commit cited where it is done)."""

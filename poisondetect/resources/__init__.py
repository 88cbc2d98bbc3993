"""Reference data files shipped with poisondetect (see SAFETY_SOURCES.md)."""

"""Report renderers: they only read a :class:`poisondetect.pipeline.ScanResult`."""

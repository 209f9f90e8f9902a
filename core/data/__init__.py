"""The OPIXray data layer: layout, annotations, validation, formats, torch Dataset."""

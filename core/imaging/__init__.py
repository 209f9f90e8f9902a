"""Image decoding and the screening enhancements (no Qt)."""

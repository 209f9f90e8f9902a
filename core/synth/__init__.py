"""Physically based synthetic X-ray baggage images and threat image projection (TIP)."""

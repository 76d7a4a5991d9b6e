"""The synthetic vendor: catalog (what it sells), stories (how customers behave), rendering."""

from pipelines.simulator.vendor.catalog import DEFAULT_TODAY, SIZES, App
from pipelines.simulator.vendor.synthetic import SyntheticVendor

__all__ = ["DEFAULT_TODAY", "SIZES", "App", "SyntheticVendor"]

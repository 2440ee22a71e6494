"""Localisation stage post-processing: organ clean-up and the lesion table."""

from mednet.localisation.lesions import TABLE_COLUMNS, find_lesions, largest_diameter_mm, write_lesion_table
from mednet.localisation.organs import clean_organs

__all__ = ["TABLE_COLUMNS", "clean_organs", "find_lesions", "largest_diameter_mm", "write_lesion_table"]

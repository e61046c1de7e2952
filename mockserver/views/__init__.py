"""HTTP layer: parsing requests and rendering responses; the domain lives in ``models``."""

"""Field data: SD logs read, ingested into DuckDB and reported."""

"""mpac-warehouse: Atlassian Marketplace reporting data into a DuckDB warehouse."""

"""dlt source for the Atlassian Marketplace reporting API."""

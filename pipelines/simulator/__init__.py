"""A local, faithful stand-in for the Marketplace reporting API, serving one synthetic vendor."""

"""Entry points run by hand (`make demo`, `make bench`): nothing imports them."""

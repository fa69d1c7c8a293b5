"""`make bench`: pumpwatch's figures against floors measured in the same run (see bench/run.py)."""

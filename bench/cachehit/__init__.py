"""Result cache: a hit against a real run, submit to result."""

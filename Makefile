# Common tasks. Each is a thin wrapper over scripts/ (which work without make too).
.PHONY: install run demo test check ci golden bench

install:
	scripts/install test

run:
	scripts/run

demo:
	scripts/run demo

test:
	scripts/test

check:
	scripts/check

ci:
	bash .ci/run

golden:  # rewrite publisher golden files on purpose, then review the diff
	scripts/test tests/test_publisher.py --update-golden

bench:  # issue 8: first refresh vs the library floor, steady state; SIZE=small|medium|large
	.venv/bin/python -m bench --size $(or $(SIZE),small)

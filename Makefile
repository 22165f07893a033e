# textdesk: `make test` is the full test run (what CI runs); `make bench` the load benchmark.
.PHONY: test bench bench-smoke bench-profile

test:
	./scripts/test

# The load benchmark (issue 8): SQLite and PostgreSQL, 1/10/50 concurrent senders, a memory soak.
# Loopback only; ~10 minutes on 2 cores; writes bench/results.md and bench/results.json.
bench:
	uv run --frozen python -m bench.run

bench-smoke:
	uv run --frozen python -m bench.run --plan smoke --out /tmp/textdesk-bench-smoke

# Per-stage wall-clock breakdown of one path (see bench/profile.py; add ARGS="--py-spy").
bench-profile:
	uv run --frozen python -m bench.profile --db sqlite --concurrency 1,50 $(ARGS)
	uv run --frozen python -m bench.profile --db postgres --concurrency 1,10 $(ARGS)

# textdesk: `make test` is the full test run (what CI runs); `make bench` the load benchmark.
.PHONY: test bench bench-smoke bench-profile soak

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

# The soak checker (issue 15): randomised conversations from many senders against 2 workers on
# PostgreSQL with injected Twilio errors and a worker restart; prints the invariants, exits 1 on any
# violation. Loopback only; ~4 minutes.
soak:
	uv run --frozen python -m bench.soak --seconds 150 --senders 40 $(ARGS)

"""The reliability harness behind tools/torture.py: crashes, contention, tampering and
hostile input, measured. docs/reliability.md explains what each part checks.

Modules: `workload` (a realistic command mix), `crash_worker` / `crash` (SIGKILL at
random moments, then audit the file), `contention_worker` / `contention` (N processes
on one file), `tamper` and `corruption` (modified rows and damaged pages), `fuzz`
(hostile payloads and a libFuzzer target), `hostile` (bad arguments to every facade
command), `audit` (static checks: pickle, SQL building, file modes, terminal output).
"""

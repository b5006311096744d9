# Thin aliases for the scripts (the scripts work without make).
.PHONY: demo test bench-train bench-route bench-chat bench-active

demo:
	scripts/demo.sh

test:
	scripts/test.sh

bench-train:
	.venv/bin/python bench/train_bench.py

bench-route:
	.venv/bin/python bench/route_bench.py

bench-chat:
	.venv/bin/python bench/chat_load.py

bench-active:
	.venv/bin/python bench/active_learning.py

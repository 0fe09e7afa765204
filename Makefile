# The two commands of the README: `make run` (set up + start QGIS with the plugin) and `make test`.
.PHONY: run test setup package release bench clean
run:
	bash scripts/setup.sh
	bash scripts/run_qgis.sh
test:
	bash scripts/test.sh
setup:
	bash scripts/setup.sh
package:
	bash scripts/package.sh
release:
	bash scripts/package.sh --release
bench:
	bash scripts/setup.sh --test && bash scripts/fake_hub.sh && .venv-terratorch/bin/python bench/run_all.py
clean:
	rm -rf dist build test-results

#!/bin/bash -eu
# Builds every espspec fuzz target (harness/fuzz/targets/*.py) into $OUT the way
# ClusterFuzzLite / OSS-Fuzz run Python targets: one PyInstaller bundle per script
# (compile_python_fuzzer, from the builder image), each with its shipped seeds as
# $OUT/<name>_seed_corpus.zip. The network target needs root, namespaces and a daemon,
# which the service does not give a fuzzer: it is left out.
pip3 install .

for script in harness/fuzz/targets/*.py; do
    name=$(basename "$script" .py)
    case "$name" in _*|network) continue ;; esac
    # the package metadata (entry points: --iut names) and the plug-ins loaded by name
    compile_python_fuzzer "$script" --copy-metadata espspec \
        --collect-submodules harness --collect-submodules spec_model
    seeds="corpora/${name//_/-}"
    if [ -d "$seeds" ]; then
        (cd "$seeds" && zip -q -r "$OUT/${name}_seed_corpus.zip" .)
    fi
done

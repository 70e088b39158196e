"""Exposes Debian's system libraries to Bazel as @system//:<name> cc_library targets.

Link lines come from pkg-config, run when Bazel first loads the repository, so a
library split into many archives (Abseil) is linked exactly as its .pc files say.
A library without a .pc file gets a fixed -l flag. Nothing is downloaded.
"""

# name -> pkg-config modules, or a list with a single "-l..." flag.
_PKG_CONFIG_LIBRARIES = {
    "absl": [
        "absl_base",
        "absl_btree",
        "absl_flat_hash_map",
        "absl_flat_hash_set",
        "absl_inlined_vector",
        "absl_int128",
        "absl_span",
        "absl_status",
        "absl_statusor",
        "absl_str_format",
        "absl_strings",
        "absl_time",
        "absl_synchronization",
        "absl_function_ref",
        "absl_cleanup",
    ],
    "benchmark": ["benchmark"],
    "gtest": ["gtest", "gmock"],
    "gtest_main": ["gtest_main", "gmock"],
    "pq": ["libpq"],
    "protobuf": ["protobuf"],
}

_PLAIN_LIBRARIES = {
    "benchmark_main": ["-lbenchmark_main", "-lbenchmark", "-lpthread"],
    "boost_context": ["-lboost_context"],
    "lmdb": ["-llmdb"],
    "pthread": ["-lpthread"],
}

def _pkg_config(ctx, modules):
    result = ctx.execute(["pkg-config", "--libs"] + modules)
    if result.return_code != 0:
        fail("pkg-config failed for %s (run tools/setup): %s" % (modules, result.stderr))
    return result.stdout.strip().split(" ")

def _cc_library(name, linkopts):
    return """
cc_library(
    name = "{name}",
    linkopts = {linkopts},
    visibility = ["//visibility:public"],
)
""".format(name = name, linkopts = repr([opt for opt in linkopts if opt]))

def _system_libraries_impl(ctx):
    build = []
    for name, modules in _PKG_CONFIG_LIBRARIES.items():
        build.append(_cc_library(name, _pkg_config(ctx, modules)))
    for name, flags in _PLAIN_LIBRARIES.items():
        build.append(_cc_library(name, flags))
    protoc = ctx.which("protoc")
    if protoc == None:
        fail("protoc not found (run tools/setup)")
    ctx.symlink(protoc, "protoc")
    build.append('exports_files(["protoc"])\n')
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD.bazel", "".join(build))

system_libraries = repository_rule(
    implementation = _system_libraries_impl,
    local = True,
    environ = ["PKG_CONFIG_PATH"],
)

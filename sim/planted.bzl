"""planted_binary: a cc_binary rebuilt with the simulator's planted bugs compiled in.

The transition adds -DUNIMETER_PLANTED_BUGS to every C++ compile action below `binary`, so the
whole dependency graph is built a second time in its own configuration (its own output
directory): release targets never see the define (node/base/planted_bugs.h).
"""

def _planted_transition_impl(settings, attr):
    return {
        "//command_line_option:copt": settings["//command_line_option:copt"] + ["-DUNIMETER_PLANTED_BUGS"],
    }

_planted_transition = transition(
    implementation = _planted_transition_impl,
    inputs = ["//command_line_option:copt"],
    outputs = ["//command_line_option:copt"],
)

def _planted_binary_impl(ctx):
    binary = ctx.attr.binary[0][DefaultInfo]
    out = ctx.actions.declare_file(ctx.label.name)

    # A copy, and none of the transitioned binary's runfiles: those hold it under its own
    # runfiles path (sim/unimeter-sim), which would shadow the release binary of that name in
    # any test that has both (the planted-bug test checks that the release one refuses
    # --plant). The binary is statically linked and needs no runfiles.
    ctx.actions.run_shell(
        inputs = [binary.files_to_run.executable],
        outputs = [out],
        command = "cp -- \"$1\" \"$2\" && chmod +x \"$2\"",
        arguments = [binary.files_to_run.executable.path, out.path],
        mnemonic = "CopyPlantedBinary",
    )
    return [DefaultInfo(
        executable = out,
        files = depset([out]),
        runfiles = ctx.runfiles(files = [out]),
    )]

planted_binary = rule(
    implementation = _planted_binary_impl,
    attrs = {
        "binary": attr.label(cfg = _planted_transition, executable = True, mandatory = True),
        "_allowlist_function_transition": attr.label(
            default = "@bazel_tools//tools/allowlists/function_transition_allowlist",
        ),
    },
    executable = True,
)

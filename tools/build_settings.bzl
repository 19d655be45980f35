"""The build setting that picks the default heap: //:default_heap."""

def _heap_choice_impl(ctx):
    if ctx.build_setting_value not in ("nitro", "legacy"):
        fail("//:default_heap must be 'nitro' or 'legacy', not '%s'" % ctx.build_setting_value)
    return []

heap_choice = rule(
    implementation = _heap_choice_impl,
    build_setting = config.string(flag = True),
    doc = "nitro or legacy: the heap used when NITROHEAP is not set at run time.",
)

def _on_off_impl(ctx):
    return []

on_off = rule(
    implementation = _on_off_impl,
    build_setting = config.bool(flag = True),
    doc = "A true/false command-line setting: --//:NAME or --no//:NAME.",
)

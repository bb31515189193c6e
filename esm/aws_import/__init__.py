"""`esm import`: AWS event source mapping definitions in, esm YAML out.

Reads CloudFormation / SAM templates (JSON, or YAML with the short intrinsic tags) and the
JSON of `aws lambda create-event-source-mapping --cli-input-json`,
`list-event-source-mappings` and `get-event-source-mapping`, and writes mappings that
`esm validate` accepts. The modules, in the order data flows through them:

- `documents`: read a file (`template` for the YAML tags) and find its mappings, each as an
  `AwsMapping`: CreateEventSourceMapping parameter names, whatever the input spelled.
- `intrinsics`: evaluates CloudFormation intrinsic functions; what it cannot resolve
  becomes a `Symbol`, later a `${VARIABLE}` (`variables`).
- `mapping`, `sources`, `destinations`, `targets`: AWS parameters → esm keys; every
  property that cannot be carried over becomes a `Note` (printed on stderr, never dropped).
- `writer`: the YAML, with a comment on every variable; `command`: the CLI glue.

Nothing here imports a connector: the core's rule (DESIGN §2) holds for tools too.
"""

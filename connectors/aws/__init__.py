"""AWS services: `clients` (the shared boto3 plumbing every AWS connector may import), the
`lambda` target (`lambda_target`), the `sns` and `s3` on-failure destinations, and the
`dynamodb` tumbling-window store (`dynamodb_windows`)."""

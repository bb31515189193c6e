"""AWS services: `clients` (the shared boto3 plumbing every AWS connector may import), the
`lambda` target (`lambda_target`) and the `sns` and `s3` on-failure destinations."""

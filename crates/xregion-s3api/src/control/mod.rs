//! S3 Control batch-operations job API (`/v20180820/jobs`), limited to batch replication:
//! the request codec (`xml`) and the operations (`api`).

pub(crate) mod api;
pub(crate) mod xml;

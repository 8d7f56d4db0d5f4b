//! The SSH gateway: students reach their lab's nodes with `ssh -p 2222 STUDENT@server`.

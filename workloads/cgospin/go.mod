module gocpu.dev/workloads/cgospin

go 1.19

module gocpu.dev/workloads

go 1.19

module gocpu.dev/workloads/schedstorm

go 1.19

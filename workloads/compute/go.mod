module gocpu.dev/workloads/compute

go 1.19

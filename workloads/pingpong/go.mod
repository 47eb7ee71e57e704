module gocpu.dev/workloads/pingpong

go 1.19

module gocpu.dev/workloads/goroutineleak

go 1.19

module gocpu.dev/workloads/lockcontention

go 1.19

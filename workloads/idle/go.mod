module gocpu.dev/workloads/idle

go 1.19

module gocpu.dev/workloads/syscallheavy

go 1.19

module example.com/gobinoracle

go 1.19

module offsetsprobe

go 1.19

module example.com/buildok

go 1.22

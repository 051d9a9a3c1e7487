package pvesim

func opsChangeRoutes() []route { return nil }

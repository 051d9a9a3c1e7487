package pvesim

func opsReadRoutes() []route { return nil }

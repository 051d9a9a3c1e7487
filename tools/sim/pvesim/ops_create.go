package pvesim

func opsCreateRoutes() []route { return nil }

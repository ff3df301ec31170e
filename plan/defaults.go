package plan

// applyDefaults fills what a step leaves unsaid: the plan's defaults for
// timeouts and maximum execution time, "after the previous step", a start
// of "now" for steps without cron, and a null method payload.
func applyDefaults(p *Plan) {
	for i, s := range p.Steps {
		if !s.afterSet && i > 0 {
			s.After = []string{p.Steps[i-1].Name}
		}
		if s.After == nil {
			s.After = []string{}
		}
		if !s.maxExecutionTimeSet {
			s.MaxExecutionTime = p.Defaults.MaxExecutionTime
		}
		if s.Cron == "" && s.Start == (Start{}) {
			s.Start = Start{Now: true}
		}
		methodDefaults(p, s.Method)
		if rb := s.Rollback; rb != nil {
			methodDefaults(p, rb.Method)
		}
	}
}

func methodDefaults(p *Plan, m *Method) {
	if m == nil {
		return
	}
	if !m.responseTimeoutSet {
		m.ResponseTimeout = p.Defaults.ResponseTimeout
	}
	if !m.connectTimeoutSet {
		m.ConnectTimeout = p.Defaults.ConnectTimeout
	}
	if len(m.Payload) == 0 {
		m.Payload = []byte("null")
	}
}

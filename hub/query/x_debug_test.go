package query
import "testing"
func TestX(t *testing.T) {
	for _, s := range []string{
		"select top 3 deviceId, tags.[[group]] as g from devices where NOT (tags.floor - -1 >= 0x3) or deviceId nin [\"a\", 'b\\'c', null]",
		"SELECT * FROM devices.jobs WHERE [[devices]].jobs.x = [[]] AND tags.x IN [-0]",
	} {
		q, err := Parse(s); t.Log(q, err)
	}
	e, err := ParseCondition("tags.s = '\\ud83d\\ude00\\u0000\\ud800x' AND NOT -(-1) = tags.a--b")
	t.Log(e, err)
}

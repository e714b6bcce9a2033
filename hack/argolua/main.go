// argolua runs an Argo CD resource health script the way Argo CD does (gopher-lua; the
// object as the global `obj`, converted from JSON to Lua tables; the base, table, string and
// math libraries; a time limit), and prints the table the script returns as JSON.
//
// Usage: argolua health.lua < object.json
// Output: {"status": "Healthy|Progressing|Degraded|Suspended|Missing|Unknown", "message": "..."}
//
//	argolua --action action.lua < object.json
//
// runs a resource action instead (Argo CD gives actions `os.date` and `os.time` too) and
// prints the object it returns.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Argo CD's default for resource customizations (controller.resource.health.timeout).
const scriptTimeout = 1 * time.Second

func main() {
	args := os.Args[1:]
	action := len(args) == 2 && args[0] == "--action"
	if action {
		args = args[1:]
	}
	if len(args) != 1 {
		fail("usage: argolua [--action] SCRIPT < object.json")
	}
	script, err := os.ReadFile(args[0])
	if err != nil {
		fail("%v", err)
	}
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("reading stdin: %v", err)
	}
	var obj map[string]interface{}
	if err := json.Unmarshal(raw, &obj); err != nil {
		fail("stdin is not a JSON object: %v", err)
	}
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		L.Push(L.NewFunction(lib.fn))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	if action {
		safeOS(L)
	}
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	L.SetContext(ctx)
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(string(script)); err != nil {
		fail("script failed: %v", err)
	}
	table, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		fail("the script returned %s, not a table", L.Get(-1).Type())
	}
	if action {
		if err := json.NewEncoder(os.Stdout).Encode(fromLua(table)); err != nil {
			fail("writing: %v", err)
		}
		return
	}
	out := map[string]string{
		"status":  lua.LVAsString(table.RawGetString("status")),
		"message": lua.LVAsString(table.RawGetString("message")),
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail("writing: %v", err)
	}
}

// toLua converts decoded JSON as Argo CD's lua VM does: objects and arrays become tables
// (arrays 1-based), numbers Lua numbers, null nil.
func toLua(L *lua.LState, v interface{}) lua.LValue {
	switch x := v.(type) {
	case map[string]interface{}:
		t := L.NewTable()
		for k, item := range x {
			t.RawSetString(k, toLua(L, item))
		}
		return t
	case []interface{}:
		t := L.NewTable()
		for i, item := range x {
			t.RawSetInt(i+1, toLua(L, item))
		}
		return t
	case string:
		return lua.LString(x)
	case float64:
		return lua.LNumber(x)
	case bool:
		return lua.LBool(x)
	default:
		return lua.LNil
	}
}

// safeOS gives the script an `os` table with only date and time, as Argo CD's actions get.
func safeOS(L *lua.LState) {
	L.Push(L.NewFunction(lua.OpenOs))
	L.Push(lua.LString(lua.OsLibName))
	L.Call(1, 0)
	full := L.GetGlobal("os").(*lua.LTable)
	safe := L.NewTable()
	for _, name := range []string{"date", "time", "clock"} {
		safe.RawSetString(name, full.RawGetString(name))
	}
	L.SetGlobal("os", safe)
}

// fromLua converts a returned table back to JSON values: a table with keys 1..n is an
// array, any other an object.
func fromLua(v lua.LValue) interface{} {
	switch x := v.(type) {
	case *lua.LTable:
		if n := x.MaxN(); n > 0 {
			items := make([]interface{}, 0, n)
			for i := 1; i <= n; i++ {
				items = append(items, fromLua(x.RawGetInt(i)))
			}
			return items
		}
		m := map[string]interface{}{}
		x.ForEach(func(k, item lua.LValue) { m[lua.LVAsString(k)] = fromLua(item) })
		return m
	case lua.LString:
		return string(x)
	case lua.LNumber:
		return float64(x)
	case lua.LBool:
		return bool(x)
	default:
		return nil
	}
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "argolua: "+format+"\n", args...)
	os.Exit(2)
}

import json
def render(results, figures):
    return json.dumps(results.get("throughput", {}).get("summary"), indent=1)
